"""Teleop devices (``rosmind.hardware.teleop``): one ``Device`` interface, one ``DEVICES`` registry.

Entries: ``keyboard`` (terminal, works over SSH), ``gamepad`` (pygame joystick), ``spacemouse``
(hidapi), ``web`` (browser page served by the teleop node). No rclpy here.
"""
