"""Training: the run from process group to last checkpoint, its loop, and what it saves."""
