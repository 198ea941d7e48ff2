"""The shape of the project: no import cycle, the file format at the base, a light inference path."""
import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("mottr", "data_prep", "configs")
# mottr modules that call data_prep, each from its CLI code only (a deferred import): the demo renders
# its clip, the training CLI prepares the data (data_prep.prepare) before the library trains on it, the
# refiner's trainer reads the real labelled frames (data_prep.real_frames).
CALLS_DATA_PREP = {"mottr.demo", "mottr.train", "mottr.train_refiner"}


def _modules() -> dict[str, str]:
  """{dotted module name: path} of the project's packages."""
  found = {}
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(REPO, package)):
      for f in files:
        if f.endswith(".py"):
          rel = os.path.relpath(os.path.join(folder, f), REPO)[:-3].replace(os.sep, ".")
          found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, f)
  return found


def _imports(path: str, modules: dict[str, str]) -> set[str]:
  """Project modules a file imports (at any depth of the file, function bodies too)."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    for name in names:
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name:
        out.add(name)
  return out


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  for m in list(graph):  # importing a.b.c runs the package a.b's __init__ too, not a cycle
    graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
  return graph


def test_no_import_cycle():
  graph = _graph()
  state: dict[str, int] = {}
  cycles = []

  def visit(m, path):
    state[m] = 1
    for d in sorted(graph[m]):
      if state.get(d) == 1:
        cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
      elif d not in state:
        visit(d, path + [d])
    state[m] = 2

  for m in sorted(graph):
    if m not in state:
      visit(m, [m])
  assert not cycles, cycles


def test_data_prep_uses_only_the_schema_of_mottr():
  graph = _graph()
  for m, deps in graph.items():
    if m.startswith("data_prep"):
      assert {d for d in deps if d.startswith("mottr")} <= {"mottr", "mottr.schema"}, (m, deps)


def test_only_the_listed_mottr_modules_call_data_prep():
  graph = _graph()
  callers = {m for m, deps in graph.items() if m.startswith("mottr")
             and any(d.startswith("data_prep") for d in deps)}
  assert callers <= CALLS_DATA_PREP, callers


def test_the_inference_cli_imports_no_training_or_data_code():
  code = ("import sys, mottr.infer, mottr.predictor, mottr.runner\n"
          "heavy = ('tensorflow_datasets', 'grain', 'optax', 'orbax', 'data_prep')\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[]"
