"""Evaluation: the test protocol, its orchestration, result files and rendering."""
