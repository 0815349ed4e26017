"""The paper tables (values as printed, in %), read by yolov7lib.pipeline.paper_table."""
