"""python -m carafe_seg.demo: tiny UperNet, bilinear vs CARAFE, trained side by side on synthetic scenes."""
