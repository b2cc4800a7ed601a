package fileserve

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// cache keeps files open between requests, keyed by request path, at most
// max of them. An entry is checked against its path before every use
// (one stat, cheaper than the open, fstat and close it saves): a file
// replaced (renamed over) or removed since it was opened is never served;
// it is dropped and the path resolved again. So the cache does not depend
// on every writer, in this process or another, telling it of a change.
// Writers put files in place by rename, so what is at a path is whole.
type cache struct {
	mu         sync.Mutex
	max        int
	m          map[string]*entry
	head, tail *entry // most recently used first
}

// entry is one open file. refs counts the responses sending from it: an
// entry dropped while in use is closed by the last of them.
type entry struct {
	key  string
	path string
	stat statPath // the path, ready for the stat of each check
	f    *os.File
	fd   uintptr
	size int64
	id   fileID
	etag string
	// hdr holds the response headers that do not change between requests
	// (Accept-Ranges, Cache-Control, Content-Type, Etag, Last-Modified).
	hdr []byte

	refs       int
	dropped    bool
	prev, next *entry
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[string]*entry)}
}

// get returns the entry of key, in use (release it), or nil.
func (c *cache) get(key []byte) *entry {
	c.mu.Lock()
	e := c.m[string(key)]
	if e != nil {
		e.refs++
		c.toFront(e)
	}
	c.mu.Unlock()
	return e
}

func (c *cache) release(e *entry) {
	c.mu.Lock()
	e.refs--
	closeIt := e.dropped && e.refs == 0
	c.mu.Unlock()
	if closeIt {
		e.f.Close()
	}
}

// drop removes e (in use by the caller) so that the next get of its key
// opens the path again.
func (c *cache) drop(e *entry) {
	c.mu.Lock()
	if c.m[e.key] == e {
		c.remove(e)
	}
	c.mu.Unlock()
}

// open opens t.Path for key and returns its entry, in use. Only regular
// files are served.
func (c *cache) open(key string, t Target) (*entry, error) {
	f, err := os.Open(t.Path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", t.Path)
	}
	populate(f, fi.Size())
	e := &entry{key: key, path: t.Path, stat: newStatPath(t.Path), f: f, fd: f.Fd(), size: fi.Size(), id: idOf(fi), refs: 1}
	e.etag = t.ETag
	if e.etag == "" {
		// The zone server's ETag since before this package: mtime and size.
		e.etag = fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size())
	}
	h := []byte("Accept-Ranges: bytes\r\n")
	if t.CacheControl != "" {
		h = append(h, "Cache-Control: "+t.CacheControl+"\r\n"...)
	}
	ct := t.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h = append(h, "Content-Type: "+ct+"\r\n"...)
	h = append(h, "Etag: "+e.etag+"\r\n"...)
	if mt := fi.ModTime(); !mt.IsZero() && mt.Unix() != 0 {
		h = append(h, "Last-Modified: "+mt.UTC().Format(http.TimeFormat)+"\r\n"...)
	}
	e.hdr = h

	c.mu.Lock()
	var evicted []*entry
	if old := c.m[key]; old != nil {
		c.remove(old)
		if old.refs == 0 {
			evicted = append(evicted, old)
		}
	}
	c.m[key] = e
	c.pushFront(e)
	for len(c.m) > c.max && c.tail != nil && c.tail != e {
		old := c.tail
		c.remove(old)
		if old.refs == 0 {
			evicted = append(evicted, old)
		}
	}
	c.mu.Unlock()
	for _, old := range evicted {
		old.f.Close()
	}
	return e, nil
}

// valid reports whether e's path still names the file e holds open.
func (e *entry) valid() bool {
	id, ok := e.stat.stat()
	return ok && sameFile(id, e.id)
}

// sweep drops the idle entries whose files were replaced or removed, so
// that a removed file's disk space is not held open for long.
func (c *cache) sweep() {
	c.mu.Lock()
	var idle []*entry
	for e := c.head; e != nil; e = e.next {
		if e.refs == 0 {
			idle = append(idle, e)
		}
	}
	c.mu.Unlock()
	for _, e := range idle {
		if e.valid() {
			continue
		}
		c.mu.Lock()
		gone := c.m[e.key] == e && e.refs == 0
		if gone {
			c.remove(e)
		}
		c.mu.Unlock()
		if gone {
			e.f.Close()
		}
	}
}

// closeAll drops every entry; those in use close when released.
func (c *cache) closeAll() {
	c.mu.Lock()
	var idle []*entry
	for c.head != nil {
		e := c.head
		c.remove(e)
		if e.refs == 0 {
			idle = append(idle, e)
		}
	}
	c.mu.Unlock()
	for _, e := range idle {
		e.f.Close()
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// remove unlinks e (c.mu held) and marks it dropped.
func (c *cache) remove(e *entry) {
	delete(c.m, e.key)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
	e.dropped = true
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *cache) toFront(e *entry) {
	if c.head == e {
		return
	}
	// unlink, then push
	e.prev.next = e.next
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	c.pushFront(e)
}

// appendDate appends t in the HTTP date format without allocating.
func appendDate(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, http.TimeFormat)
}
