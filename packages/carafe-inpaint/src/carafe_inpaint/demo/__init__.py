"""The demo: python -m carafe_inpaint.demo --output DIR (see __main__.py)."""
