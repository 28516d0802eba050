"""The console scripts of carafe-seg: argument parsing and a call into the library, nothing more."""
