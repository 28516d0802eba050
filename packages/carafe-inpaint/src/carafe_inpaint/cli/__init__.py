"""The console scripts of carafe-inpaint: argument parsing and a call into the library, nothing more."""
