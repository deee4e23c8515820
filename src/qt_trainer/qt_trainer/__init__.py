"""qt_trainer: the Q-Transformer learning core (torch only; never imports rclpy)."""
