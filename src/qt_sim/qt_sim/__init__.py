"""qt_sim: MuJoCo tabletop arm, its ROS 2 driver, the scripted expert and teleop nodes."""
