"""Camera-invariant features (course chapter 3; survey challenge 3, §3.3, Eq. 6-10).

Diagnosis of camera bias, camera colour-statistics and feature normalisation, camera-aware
batch normalisation, intra- then inter-camera association, the intra- / inter-camera memory
losses of Eq. 8-10, camera-aware proxies (CAP) and their successors, and camera-aware
meta-learning (MetaCam). Each module names its paper; import from the module itself.
"""
