"""Compiled kernels of maskdec (private: call them through maskdec.lut)."""
