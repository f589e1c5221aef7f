"""Squeezer's benchmarks: ``python -m load.bench [--quick] [--only NAME]``.

Every comparison is a ratio measured side by side in one run (A and B
alternate for several rounds, the median is reported), because the machines
they run on are shared and noisy. Absolute throughputs are printed for the
chart only.
"""
