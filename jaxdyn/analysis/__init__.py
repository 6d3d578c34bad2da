"""Analyses of recorded training: fits, PCA, spectra, kernels, information. Import the submodules directly."""
