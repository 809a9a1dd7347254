package main

import (
	"context"
	"sort"
	"sync"

	"github.com/kapbridge/kapbridge/fhir"
	"github.com/kapbridge/kapbridge/fhir/auth"
	"github.com/kapbridge/kapbridge/mappings/records"
)

// practices are the Appliers of the practices (tenants) `kapbridge serve`
// writes practice records for: one per tenant, made on first use and
// shared by the practice API and the overdue sweep.
type practices struct {
	make  func(tenant, namespace string) *records.Applier
	store fhir.Store

	mu sync.Mutex
	m  map[string]*records.Applier
}

// get is tenant's Applier, made with namespace the first time.
func (p *practices) get(tenant, namespace string) *records.Applier {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*records.Applier{}
	}
	ap, ok := p.m[tenant]
	if !ok {
		ap = p.make(tenant, namespace)
		p.m[tenant] = ap
	}
	return ap
}

// all are the Appliers of every practice: those made so far and those of
// the practices registered clients belong to (so a restart still sweeps a
// practice none of whose clients has called yet), by tenant.
func (p *practices) all(ctx context.Context) []*records.Applier {
	if as, ok := p.store.(auth.Store); ok {
		if cs, err := as.AuthClients(ctx); err == nil {
			for _, c := range cs {
				if c.Tenant != "" && c.Tenant != fhir.DefaultTenant {
					p.get(c.Tenant, c.Tenant)
				}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*records.Applier, 0, len(p.m))
	for _, ap := range p.m {
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}
