"""reidlib: the shared library of the course "Unsupervised Person Re-ID, hands-on".

The layout mirrors the course (docs/course_plan.md), which follows the survey by X. Lin,
P. Ren, C.-H. Yeh, L. Yao, A. Song and X. Chang, "Unsupervised Person Re-Identification:
A Systematic Survey of Challenges and Solutions", arXiv:2109.06057:

- ``reidlib.data``: the synthetic multi-camera world and the real-dataset readers (chapter 0)
- ``reidlib.evaluation``: mAP / CMC / mINP under the Market-1501 protocol, re-ranking (chapter 0)
- ``reidlib.models``, ``reidlib.training``: backbones, losses, supervised training (chapter 0)
- ``reidlib.handcrafted``: the pre-deep colour-texture baseline (chapter 0)
- ``reidlib.pseudo_labels``: Jaccard distance, clustering, label quality, sweeps (chapter 1)
- ``reidlib.feature_learning``: memories, mean teachers, parts, one training loop (chapter 2)
"""

__version__ = "0.1.0"
