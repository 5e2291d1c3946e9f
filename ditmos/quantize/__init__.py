"""ditmos.quantize"""
