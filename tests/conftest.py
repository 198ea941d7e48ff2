"""Makes the repository root importable (configs/, data_prep/, mottr/) when pytest runs from anywhere."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
