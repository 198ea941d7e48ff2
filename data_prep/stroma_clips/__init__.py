"""TFDS builder `stroma_clips`: challenge videos or real sparse frames as per-frame records."""
from data_prep.stroma_clips.stroma_clips import StromaClips, StromaClipsConfig, build
