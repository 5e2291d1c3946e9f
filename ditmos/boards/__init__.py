"""ditmos.boards"""
