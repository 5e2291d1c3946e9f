"""ditmos.data"""
