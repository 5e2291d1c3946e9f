"""ditmos.models"""
