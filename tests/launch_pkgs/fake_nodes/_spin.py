"""Spin an rclpy node until SIGINT/SIGTERM, the way ``rosmind_ros.params.run_node`` does.

rclpy's own SIGINT handling raises ``KeyboardInterrupt`` at whatever bytecode runs when the
signal lands; inside pybind11's argument conversion of ``take_message`` that surfaces as a
``RuntimeError`` and the node dies with a traceback instead of shutting down. A handler that
only sets a flag, checked between ``spin_once`` calls, makes the stop orderly every time.
"""

import signal

from rclpy.executors import SingleThreadedExecutor


def spin_until_signal(node) -> None:
    stop = {"flag": False}

    def on_signal(_signum, _frame):
        stop["flag"] = True

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop["flag"]:
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown(timeout_sec=1.0)
