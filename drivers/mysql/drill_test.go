package mysql

import (
	"context"
	"strings"
	"testing"
)

func TestCountInsertRows(t *testing.T) {
	dump := "CREATE TABLE `a``b` (\n  `x` int\n);\n" +
		"INSERT INTO `a``b` VALUES (1,'it''s (a)'),(2,'x\\'),(y'),(3,\"q\");\n" +
		"CREATE TABLE `t` (\n`s` text\n);\n" +
		"INSERT INTO `t` VALUES\n(1,'a;b'),\n(2,'b');\n" +
		"/*!50001 CREATE TABLE `v` (\n  `id` int\n) */;\n" +
		"CREATE TABLE `empty` (x int);\n"
	got, err := countInsertRows(context.Background(), strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a`b": 3, "t": 2, "empty": 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("table %s: got %d rows, want %d", k, got[k], v)
		}
	}
}
