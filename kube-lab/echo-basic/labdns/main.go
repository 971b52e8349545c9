// Command labdns is the lab's stand-in for the conformance suite's coredns
// Pod: test tooling. The suite's Corefile forwards every other name to public
// resolvers, which the lab must never contact; this server reads the same
// Corefile, answers the zones whose block says `whoami` the way coredns'
// whoami plugin does (the client's address as an A or AAAA record, its port
// as an SRV record in the additional section), and refuses everything else
// (a zone that says `forward` is logged as refused, never forwarded).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"github.com/miekg/dns"
)

type zone struct {
	name   string
	port   string
	whoami bool
}

// parseCorefile reads `zone[:port] { plugin ... }` blocks: enough of the
// format for the suite's Corefile.
func parseCorefile(path string) ([]zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var zones []zone
	var cur *zone
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, "{"):
			head := strings.TrimSpace(strings.TrimSuffix(line, "{"))
			name, port, ok := strings.Cut(head, ":")
			if !ok {
				port = "53"
			}
			zones = append(zones, zone{name: dns.Fqdn(name), port: port})
			cur = &zones[len(zones)-1]
		case line == "}":
			cur = nil
		case cur != nil && strings.Fields(line)[0] == "whoami":
			cur.whoami = true
		}
	}
	return zones, sc.Err()
}

func main() {
	conf := flag.String("conf", "Corefile", "the Corefile")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	zones, err := parseCorefile(*conf)
	if err != nil {
		log.Fatalf("labdns: %v", err)
	}
	ports := map[string]bool{}
	for _, z := range zones {
		ports[z.port] = true
		if z.whoami {
			log.Printf("labdns: zone %s answers whoami", z.name)
		} else {
			log.Printf("labdns: zone %s is refused (the lab forwards nowhere)", z.name)
		}
	}
	dns.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) { answer(w, r, zones) })
	errs := make(chan error)
	for port := range ports {
		for _, network := range []string{"udp", "tcp"} {
			server := &dns.Server{Addr: ":" + port, Net: network}
			go func() { errs <- server.ListenAndServe() }()
		}
	}
	log.Fatalf("labdns: %v", <-errs)
}

// answer finds the most specific zone of the question and answers it.
func answer(w dns.ResponseWriter, r *dns.Msg, zones []zone) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	var best *zone
	for i := range zones {
		z := &zones[i]
		if dns.IsSubDomain(z.name, q.Name) && (best == nil || dns.CountLabel(z.name) > dns.CountLabel(best.name)) {
			best = z
		}
	}
	if best == nil || !best.whoami {
		m.Rcode = dns.RcodeRefused
		log.Printf("labdns: %s %s refused", q.Name, dns.TypeToString[q.Qtype])
		_ = w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	host, port, _ := net.SplitHostPort(w.RemoteAddr().String())
	ip := net.ParseIP(host)
	var rr dns.RR
	if ip.To4() != nil {
		rr = &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: ip}
	} else {
		rr = &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: ip}
	}
	srv := &dns.SRV{
		Hdr:    dns.RR_Header{Name: "_" + w.RemoteAddr().Network() + "." + q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET},
		Port:   portNumber(port),
		Target: ".",
	}
	m.Extra = append(m.Extra, rr, srv)
	log.Printf("labdns: %s %s answered for %s", q.Name, dns.TypeToString[q.Qtype], w.RemoteAddr())
	_ = w.WriteMsg(m)
}

func portNumber(s string) uint16 {
	var p uint16
	_, _ = fmt.Sscan(s, &p)
	return p
}
