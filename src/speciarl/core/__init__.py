"""Core types every package imports: samples, judge categories, taxonomies. Imports nothing of ours."""
