"""Helpers shared by every test area: real processes, ROS isolation, message samples."""
