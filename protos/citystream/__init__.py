"""Citystream protocol."""
