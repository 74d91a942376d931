"""Course chapter 6, the survey's open directions (§5), measured on the synthetic worlds:
a self-supervised start when no pretrained weights exist (:mod:`.selfsup`) and text-to-image
retrieval from attribute descriptions (:mod:`.text`)."""
