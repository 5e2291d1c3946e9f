"""ditmos.harness"""
