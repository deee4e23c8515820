"""qt_teleop: human input devices for real arms (keyboard, sensor_msgs/Joy); needs no simulator."""
