"""The comparison runner behind `python -m ipcfast bench`."""
