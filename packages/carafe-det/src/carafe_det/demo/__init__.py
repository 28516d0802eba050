"""python -m carafe_det.demo: tiny Mask R-CNN baseline vs CARAFE on generated shapes (see __main__)."""
