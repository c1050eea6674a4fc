package ctl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Prompts work as click's: the text, the default in brackets, ": ", and an
// answer read from stdin. When stdin is not a terminal the answer is not
// echoed, so a newline is written after it to keep the output readable.

// readLine reads one answer; io.EOF without any text aborts.
func (a *App) readLine() (string, error) {
	line, err := a.in.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(a.Stdout)
			return "", errAborted
		}
		return "", err
	}
	if !isTerminal(a.Stdin) {
		fmt.Fprintln(a.Stdout)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// prompt asks for a value. def nil: an answer is required (asked again
// when empty); else an empty answer means *def, shown in brackets.
func (a *App) prompt(text string, def *string) (string, error) {
	for {
		p := text
		if def != nil {
			p += " [" + *def + "]"
		}
		fmt.Fprint(a.Stdout, p+": ")
		line, err := a.readLine()
		if err != nil {
			return "", err
		}
		if line != "" {
			return line, nil
		}
		if def != nil {
			return *def, nil
		}
	}
}

// confirm asks a yes/no question, "no" by default.
func (a *App) confirm(text string) (bool, error) {
	for {
		fmt.Fprint(a.Stdout, text+" [y/N]: ")
		line, err := a.readLine()
		if err != nil {
			return false, err
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		case "", "n", "no":
			return false, nil
		}
		fmt.Fprintln(a.Stderr, "Error: invalid input")
	}
}

func ptr(s string) *string { return &s }

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
