"""n2nkit.training: models, noise, data, the training loop and checkpoints (needs torch).

Modules (import them directly; nothing is imported here so ``import n2nkit.training`` stays
cheap): ``models`` (registry), ``noise`` (``parse_noise``, ``add_noise``), ``data`` (built-in
photos, the report's file format, image folders), ``gpu_batches`` (crops drawn on the device),
``metrics`` (``psnr``), ``config`` (``TrainConfig``), ``trainer`` (``train``), ``checkpoint``.
"""
