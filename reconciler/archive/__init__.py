"""Archiving finished videos into Supabase Storage: the transfer layer (download, upload)."""
