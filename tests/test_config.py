"""The config schema: the tracker section, overrides, and saved configs with deleted options."""
import dataclasses
import glob
import importlib
import os

import pytest

from mottr import config
from mottr import config_overrides
from mottr import tracker
from mottr.schema import UserError


def test_the_tracker_section_holds_the_tracker_defaults():
  assert config.get_config().tracker.to_dict() == dataclasses.asdict(tracker.TrackerSettings())


def test_tracker_overrides_use_the_one_syntax():
  rest, overrides = config_overrides.parse_overrides(
      ["prog", "--config.tracker.birth_threshold=0.8", "--video=x"])
  assert rest == ["prog", "--video=x"]
  c = config_overrides.apply(config.get_config(), overrides)
  assert tracker.TrackerSettings.from_config(c).birth_threshold == 0.8
  with pytest.raises(UserError, match="did you mean tracker.birth_threshold"):
    config_overrides.apply(config.get_config(), {"tracker.birth_treshold": 0.8})


def test_a_saved_config_with_deleted_options_off_loads_without_them():
  saved = config.get_config().to_dict()
  saved["model"].update(denoise=False, detached_births=False, velocity_prior=False)
  saved["loss"].update(dn_box_noise=0.4, dn_label_noise=0.2)
  kept = config.drop_deleted(saved, "config.json")
  assert "denoise" not in kept["model"] and "dn_box_noise" not in kept["loss"]
  assert config.from_dict(saved, "config.json").model.num_slots == saved["model"]["num_slots"]


def test_a_saved_config_with_a_deleted_option_on_is_refused_in_one_line():
  with pytest.raises(UserError, match="model.denoise=True was deleted") as e:
    config.drop_deleted({"model": {"denoise": True}}, "ckpt/config.json")
  assert "\n" not in str(e.value)
  with pytest.raises(UserError, match="velocity_prior=True was deleted"):
    config.from_dict({"model": {"velocity_prior": True}}, "ckpt/config.json")
  with pytest.raises(UserError, match="model.denoise=True: unknown key"):  # as an override
    config_overrides.apply(config.get_config(), {"model.denoise": True})


def test_unknown_keys_of_a_saved_config_are_refused():
  with pytest.raises(UserError, match="does not match this version"):
    config.from_dict({"model": {"num_slotz": 3}}, "config.json")


def test_every_recipe_holds_exactly_the_schema_keys_with_their_types():
  """Each configs/*.py is the schema with other values: a recipe that adds a key (a typo) or
  changes a value's type would fail only when its training starts."""
  schema = config._flatten(config.get_config().to_dict())
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.py"))
                 if not p.endswith("__init__.py"))
  assert "cpu_refine_long" in names and "tiny" in names
  for name in names:
    recipe = config._flatten(importlib.import_module(f"configs.{name}").get_config().to_dict())
    assert set(recipe) == set(schema), name
    for key, value in recipe.items():
      assert type(value) is type(schema[key]) or (type(schema[key]) is float and type(value) is int), (name, key)
