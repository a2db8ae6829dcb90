"""Models packed for use outside ml-assets: an application embeds them without Dagster, BentoML or this package."""
