"""The console scripts of carafe-det: argument parsing and a call into the library, nothing more."""
