"""qt_sim: MuJoCo tabletop arm, its ROS 2 driver and the scripted expert."""
