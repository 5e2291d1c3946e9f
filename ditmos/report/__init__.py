"""ditmos.report"""
