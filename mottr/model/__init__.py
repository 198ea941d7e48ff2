"""The MOTR model: backbone -> encoder -> decoder(track queries + detect queries) -> heads; QIM."""
