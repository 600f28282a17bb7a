"""Lets the tests import bench/content/bombs.py (the MIME bombs the
content bench sends)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "bench", "content"))
