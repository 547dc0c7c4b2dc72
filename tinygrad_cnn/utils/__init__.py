"""`tinygrad_cnn.utils`: `utils.data` (Dataset, TensorDataset, DataLoader), as torch.utils."""
