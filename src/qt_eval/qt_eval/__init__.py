"""qt_eval: evaluation of exported policies (sim over ROS, in process, a real robot with an
operator), the report, ``qt demo``, and the orchestration of collection (``qt collect``).

Kept out of the runtime package so a robot running ``qt_policy_node`` never imports evaluation
or simulator code; the simulator is imported lazily, only by sim runs.
"""
