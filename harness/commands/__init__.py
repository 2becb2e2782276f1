"""Thin click commands: parse, call one domain function, print the result."""
