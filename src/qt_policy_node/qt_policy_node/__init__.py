"""qt_policy_node: runs an exported Q-Transformer policy on the robot behind a safety layer."""
