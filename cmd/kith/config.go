package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"kith/node"
	"kith/node/api"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "the node's settings, kept in its database (flags of `kith up` override them for one run)",
		Args:  args(cobra.NoArgs),
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls [--json]",
		Short: "list every setting with its value",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.settings()
			if err != nil {
				return err
			}
			return printList(st, asJSON, "", "KEY\tVALUE\tDEFAULT\tWHAT", func(s api.Setting) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s", s.Key, orDash(s.Value), orDash(s.Default), s.Help)
			})
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "print one setting",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			st, err := g.settings()
			if err != nil {
				return err
			}
			for _, s := range st {
				if s.Key == a[0] {
					fmt.Println(s.Value)
					return nil
				}
			}
			return fmt.Errorf("%w: no key %q (`kith config ls` lists them)", api.ErrBadSetting, a[0])
		},
	}
	var setJSON bool
	set := &cobra.Command{
		Use:   "set KEY VALUE [--json]",
		Short: "change one setting (an empty VALUE restores the default)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, running, err := g.setSetting(a[0], a[1])
			if err != nil {
				return err
			}
			if setJSON {
				return printJSON(s)
			}
			fmt.Printf("%s = %s\n", s.Key, orDash(s.Value))
			switch {
			case !running:
				fmt.Println("takes effect at the next `kith up`")
			case s.Live:
				fmt.Println("in effect now")
			default:
				fmt.Println("takes effect when the daemon restarts")
			}
			if s.Key == "name" || s.Key == "listen" || s.Key == "port" {
				fmt.Println("your invite changed: give friends the new one (`kith id`) so they have it")
			}
			return nil
		},
	}
	set.Flags().BoolVar(&setJSON, "json", false, "print the setting as JSON")
	cmd.AddCommand(ls, get, set)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// settings asks the daemon, or reads the database when none runs.
func (g *globals) settings() ([]api.Setting, error) {
	var out []api.Setting
	err := g.call(func(ctx context.Context, c *api.Client) (err error) {
		out, err = c.Config(ctx)
		return err
	})
	if errors.Is(err, api.ErrNoDaemon) {
		return node.HomeSettings(g.home)
	}
	return out, err
}

// setSetting changes a setting through the daemon, or in the database
// when none runs; running says which.
func (g *globals) setSetting(key, value string) (api.Setting, bool, error) {
	var out api.Setting
	err := g.call(func(ctx context.Context, c *api.Client) (err error) {
		out, err = c.SetConfig(ctx, key, value)
		return err
	})
	if errors.Is(err, api.ErrNoDaemon) {
		out, err = node.SetHomeSetting(g.home, key, value)
		return out, false, err
	}
	return out, true, err
}
