// Package practice connects a therapy practice's systems to the gateway:
// readers of import files (JSON, NDJSON, CSV) for `kapbridge import`, the
// importer that feeds their records to a records.Applier with its
// terminal progress, and the practice API (POST /practice/v1/records and
// friends), which reads request bodies with the same reader and is served
// beside the FHIR API by its engine (a server.API). Applying
// records (pending resolution, re-mapping, versioned writes) is package
// mappings/records'; this package only gets records to it and reports
// what became of them.
package practice
