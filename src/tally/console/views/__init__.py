"""One module per view group; each view takes a Request (and its path's parts) and answers a Page."""
