"""Fused CPU kernels for training (`cpu_kernels`, C++ in `csrc/`) and the process settings that
make Paddle's CPU kernels fast (`cpu_runtime`)."""
