"""ditmos.bench"""
