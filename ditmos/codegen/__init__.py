"""ditmos.codegen"""
