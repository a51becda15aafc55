"""Reports: summary.json now; the HTML report follows."""
