"""ADE20K (ADEChallengeData2016 layout): reading and checking files (ade20k), resizing and padding
(transforms), torch datasets and loaders (datasets), and a synthetic dataset in the same layout (synthetic)."""
