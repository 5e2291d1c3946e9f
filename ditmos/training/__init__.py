"""ditmos.training"""
